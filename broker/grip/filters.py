"""Subscription filters, as Pushpin 1.36 applies them to a published item for one subscriber.

A subscription (a WebSocket ``subscribe`` with ``filters``, a ``Grip-Channel`` with ``filter=``)
names filters; each judges the item's ``meta`` (from the publisher) against the subscriber's meta
(``set-meta`` on a WebSocket, ``Grip-Set-Meta`` on an HTTP hold) and its channels:

- ``skip-self``: not sent when the subscriber's ``user`` is the item's ``sender``;
- ``skip-users``: not sent when the subscriber's ``user`` is in the item's ``skip_users`` (commas);
- ``require-sub``: not sent unless the subscriber also holds the item's ``require_sub`` channel;
- ``var-subst``: ``%(name)s`` in the content replaced by the subscriber's meta ``name`` (``%%`` is
  ``%``); content that names a meta the subscriber does not have is not sent.

Pure rules; the hub calls ``apply`` only for subscriptions that carry filters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Set

from broker.grip.publish import Format, HttpResponseFormat

KNOWN_FILTERS = frozenset({"skip-self", "skip-users", "require-sub", "var-subst"})
NO_META: Mapping[str, str] = {}


def apply(filters: tuple[str, ...], fmt: Format, item_meta: Mapping[str, str] | None,
          sub_meta: Mapping[str, str] | None, channels: Set[str]) -> Format | None:  # fmt: skip
    """The format this subscriber gets (``fmt`` or a substituted copy), or None when a filter drops it."""
    pub = item_meta or NO_META
    sub = sub_meta or NO_META
    for name in filters:
        if name == "skip-self":
            user = sub.get("user")
            if user and pub.get("sender") == user:
                return None
        elif name == "skip-users":
            user = sub.get("user")
            if user and user in {u.strip() for u in pub.get("skip_users", "").split(",")}:
                return None
        elif name == "require-sub":
            required = pub.get("require_sub")
            if required and required not in channels:
                return None
        elif name == "var-subst":
            substituted = _substitute_format(fmt, sub)
            if substituted is None:
                return None
            fmt = substituted
    return fmt


def _substitute_format(fmt: Format, sub: Mapping[str, str]) -> Format | None:
    if isinstance(fmt, HttpResponseFormat):
        body = substitute(fmt.body, sub)
        return None if body is None else dataclasses.replace(fmt, body=body)
    if fmt.close:
        return fmt
    content = substitute(fmt.content, sub)
    return None if content is None else dataclasses.replace(fmt, content=content)


def substitute(content: bytes, meta: Mapping[str, str]) -> bytes | None:
    """Replace ``%(name)s`` with ``meta[name]`` and ``%%`` with ``%``; None when the content is not a
    valid format (Pushpin's var-subst: an unknown directive, an unterminated field, a missing name).

    >>> substitute(b"hi %(user)s, 100%%", {"user": "bob"})
    b'hi bob, 100%'
    """
    if b"%" not in content:
        return content
    out, n, size = bytearray(), 0, len(content)
    while n < size:
        char = content[n]
        if char != 0x25:  # '%'
            out.append(char)
            n += 1
            continue
        if n + 1 >= size:
            return None
        directive = content[n + 1]
        if directive == 0x25:
            out.append(0x25)
            n += 2
            continue
        if directive != 0x28:  # '(': only %(name)s names a variable
            return None
        name, n = bytearray(), n + 2
        while n < size and content[n] != 0x29:  # ')'
            if content[n] == 0x5C and n + 1 < size:  # '\\' escapes the next character
                n += 1
            name.append(content[n])
            n += 1
        if n + 1 >= size or content[n + 1] != 0x73:  # ')' then 's'
            return None
        value = meta.get(name.decode("utf-8", errors="replace"))
        if value is None:
            return None
        out += value.encode()
        n += 2
    return bytes(out)
