"""Subscription filters, as Pushpin 1.36 applies them to a published item for one subscriber.

A subscription (a WebSocket ``subscribe`` with ``filters``, a ``Grip-Channel`` with ``filter=``)
names filters; each judges the item's ``meta`` (from the publisher) against the subscriber's meta
(``set-meta`` on a WebSocket, ``Grip-Set-Meta`` on an HTTP hold) and its channels:

- ``skip-self``: not sent when the subscriber's ``user`` is the item's ``sender``;
- ``skip-users``: not sent when the subscriber's ``user`` is in the item's ``skip_users`` (commas);
- ``require-sub``: not sent unless the subscriber also holds the item's ``require_sub`` channel;
- ``build-id``: ``%I`` in the content replaced by an id rendered from the subscriber's meta
  ``id_format`` (``%(channel)s`` names a channel's current prev-id), ``%(text)I`` by ``text``,
  both hex-encoded with meta ``id_encoding=hex``;
- ``var-subst``: ``%(name)s`` in the content replaced by the subscriber's meta ``name`` (``%%`` is
  ``%``).

Content a content filter (build-id, var-subst) cannot render is ``Unrenderable``: as in Pushpin 1.36,
a WebSocket drops that item, an HTTP hold ends ("filter error": a stream ends, a long-poll is answered
502).

Every format directive is Pushpin's ``Format::process``: ``%%``, ``%x`` and ``%(arg)x`` (``\\``
escapes a character of ``arg``), anything else an error. Pure rules; the hub calls ``apply`` only
for subscriptions that carry filters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Set

from broker.grip.publish import Format, HttpResponseFormat

KNOWN_FILTERS = frozenset({"skip-self", "skip-users", "require-sub", "build-id", "var-subst"})
# The filters that rewrite what the origin itself sends on a stream (its first body, a next link's
# answers), not only published content: Pushpin's ProxyContent target.
PROXY_CONTENT_FILTERS = frozenset({"build-id"})
NO_META: Mapping[str, str] = {}
NO_IDS: Mapping[str, str | None] = {}
PERCENT, OPEN, CLOSE, BACKSLASH = 0x25, 0x28, 0x29, 0x5C


@dataclasses.dataclass(frozen=True, slots=True)
class Unrenderable:
    """A content filter could not render the item's content (Pushpin's "filter error")."""

    filter: str


# A directive's handler: (its letter, its argument or None) -> the text it stands for, None when invalid.
Handler = Callable[[int, bytes | None], bytes | None]


def apply(filters: tuple[str, ...], fmt: Format, item_meta: Mapping[str, str] | None,
          sub_meta: Mapping[str, str] | None, channels: Set[str],
          prev_ids: Mapping[str, str | None] = NO_IDS) -> Format | Unrenderable | None:  # fmt: skip
    """The format this subscriber gets (``fmt`` or a rewritten copy), None when a filter drops it, or
    ``Unrenderable`` when a content filter cannot render it.

    ``prev_ids`` are the subscriber's channels and their prev-ids as of this item (build-id's
    variables; a WebSocket has none in Pushpin 1.36)."""
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
    for name in filters:  # content filters run after every drop filter had its say, in their order
        if name == "var-subst":
            rewritten = _rewrite_format(fmt, lambda content: substitute(content, sub))
        elif name == "build-id":
            rewritten = _rewrite_format(fmt, lambda content: build_id(content, sub, prev_ids))
        else:
            continue
        if rewritten is None:
            return Unrenderable(name)
        fmt = rewritten
    return fmt


def ids_at_item(prev_ids: Mapping[str, str | None], channel: str, item_id: str | None) -> dict[str, str | None]:
    """The prev-ids build-id sees for an item: the item's own channel, when it tracks ids, is at the item.

    >>> ids_at_item({"a": "1", "b": None}, "a", "2")
    {'a': '2', 'b': None}
    """
    ids = dict(prev_ids)
    if ids.get(channel) is not None:
        ids[channel] = item_id
    return ids


def _rewrite_format(fmt: Format, rewrite: Callable[[bytes], bytes | None]) -> Format | None:
    if isinstance(fmt, HttpResponseFormat):
        if fmt.hint:
            return fmt
        body = rewrite(fmt.body)
        return None if body is None else dataclasses.replace(fmt, body=body)
    if fmt.close or fmt.hint:  # a close or hint has no content to render (Pushpin renders only a send)
        return fmt
    content = rewrite(fmt.content)
    return None if content is None else dataclasses.replace(fmt, content=content)


def substitute(content: bytes, meta: Mapping[str, str]) -> bytes | None:
    """Replace ``%(name)s`` with ``meta[name]`` and ``%%`` with ``%``; None when the content is not a
    valid format (Pushpin's var-subst: an unknown directive, an unterminated field, a missing name).

    >>> substitute(b"hi %(user)s, 100%%", {"user": "bob"})
    b'hi bob, 100%'
    """
    if b"%" not in content:
        return content

    def variable(directive: int, arg: bytes | None) -> bytes | None:
        if directive != 0x73 or arg is None:  # only %(name)s names a variable
            return None
        value = meta.get(arg.decode("utf-8", errors="replace"))
        return None if value is None else value.encode()

    return process(content, variable)


def build_id(content: bytes, meta: Mapping[str, str], prev_ids: Mapping[str, str | None]) -> bytes | None:
    """Pushpin's build-id: ``%I`` is the id rendered from meta ``id_format`` with the channels' prev-ids
    as ``%(channel)s`` variables (no channels: no id), ``%(text)I`` is ``text``; meta ``id_encoding=hex``
    hex-encodes both. None when it cannot render: no ``id_format``, a channel without a prev-id, ``%I``
    without an id, another encoding or directive.

    >>> build_id(b"id=%I; x=%(ab)I", {"id_format": "%(c)s-v", "id_encoding": "hex"}, {"c": "7"})
    b'id=372d76; x=6162'
    """
    id_format = meta.get("id_format")
    if id_format is None:
        return None
    default_id: bytes | None = None
    if prev_ids:
        default_id = process(id_format.encode(), lambda d, arg: _prev_id(d, arg, prev_ids))
        if default_id is None:
            return None
    encoding = meta.get("id_encoding")
    if encoding is not None and encoding != "hex":
        return None
    hexed = encoding == "hex"

    def identifier(directive: int, arg: bytes | None) -> bytes | None:
        if directive != 0x49:  # 'I'
            return None
        found = arg if arg is not None else default_id
        if found is None:
            return None
        return found.hex().encode() if hexed else found

    return content if b"%" not in content else process(content, identifier)


def _prev_id(directive: int, arg: bytes | None, prev_ids: Mapping[str, str | None]) -> bytes | None:
    if directive != 0x73 or arg is None:  # %(channel)s
        return None
    value = prev_ids.get(arg.decode("utf-8", errors="replace"))
    return None if value is None else value.encode()


def process(content: bytes, handler: Handler) -> bytes | None:
    """Pushpin's ``Format::process``: ``%%`` is ``%``; ``%x`` and ``%(arg)x`` are what ``handler`` makes of
    them (``x`` a letter after a bare ``%``); None for anything else or anything ``handler`` refuses.

    >>> process(b"a%(b\\\\)c)z%%", lambda d, arg: bytes([d]) + (arg or b""))
    b'azb)c%'
    """
    out, n, size = bytearray(), 0, len(content)
    while n < size:
        char = content[n]
        if char != PERCENT:
            out.append(char)
            n += 1
            continue
        if n + 1 >= size:
            return None
        directive = content[n + 1]
        if directive == PERCENT:
            out.append(PERCENT)
            n += 2
            continue
        arg: bytes | None = None
        if directive == OPEN:
            field, n = bytearray(), n + 2
            if n >= size:
                return None
            while n < size and content[n] != CLOSE:
                if content[n] == BACKSLASH:
                    n += 1
                    if n >= size:
                        return None
                field.append(content[n])
                n += 1
            if n + 1 >= size:  # unterminated, or no directive after ')'
                return None
            arg, directive, n = bytes(field), content[n + 1], n + 2
        elif chr(directive).isascii() and chr(directive).isalpha():
            n += 2
        else:
            return None
        value = handler(directive, arg)
        if value is None:
            return None
        out += value
    return bytes(out)


def proxy_content(filters: Set[str], content: bytes, sub_meta: Mapping[str, str]) -> bytes | None:
    """What the origin's own body on a stream (its first body, a next link's answers) becomes under the
    hold's filters: build-id renders it with the hold's meta and no prev-ids (Pushpin's ProxyContent);
    None when it cannot be rendered."""
    if not content or not filters & PROXY_CONTENT_FILTERS:
        return content
    return build_id(content, sub_meta, NO_IDS)
