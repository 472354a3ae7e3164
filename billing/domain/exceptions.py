"""Typed errors of the billing domain; the admin API maps them to 4xx responses.

Hierarchy::

    BillingError                 base of every billing rule violation
    ├── InvalidAmount            a money value that is not a finite decimal (also a ValueError)
    ├── InvalidQuantity          a usage quantity below zero (also a ValueError)
    ├── InvalidRateCard          tiers, bounds, prices or currency break the rate-card rules
    ├── InvalidStatement         an unknown line kind or status, or an amount not to the cent
    ├── NotFound                 no such resource, or one the caller may not know exists (404)
    ├── PermissionDenied         the caller's role may not take this action (403)
    ├── Conflict                 the resource's state forbids the change, e.g. finalized (409)
    ├── RuleViolation            a product or configuration rule refuses the request (400)
    └── InvalidCreditNote        a credit note over what remains, not positive, or malformed (422)

Passing a ``float`` where money is expected is a programming error, not domain data,
and raises a plain ``TypeError`` instead.
"""

from __future__ import annotations


class BillingError(Exception):
    """Base class of every billing rule violation."""


class InvalidAmount(BillingError, ValueError):
    """A money value could not be read as a finite decimal."""


class InvalidQuantity(BillingError, ValueError):
    """A usage quantity to be priced is negative."""


class InvalidRateCard(BillingError, ValueError):
    """A tier, rate or rate card breaks the rate-card rules."""


class InvalidStatement(BillingError, ValueError):
    """A statement or statement line breaks the statement rules."""


class NotFound(BillingError):
    """No such resource, or one in another account (answered the same, so nothing leaks)."""


class PermissionDenied(BillingError):
    """The caller's role may not take this action."""


class Conflict(BillingError):
    """The resource's state forbids the change (a finalized statement, a duplicate name)."""


class RuleViolation(BillingError):
    """A product or configuration rule refuses the request; the message says which and why."""


class InvalidCreditNote(BillingError, ValueError):
    """A credit note the rules refuse: more than remains of the statement or line, not positive, no reason."""
