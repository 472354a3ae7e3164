"""Hypothesis strategies for the billing domain: prices, rates, rate cards, usage reports."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import strategies as st

from billing.domain.rate_cards import Rate, RateCard, Tier
from kernel.instants import Month
from metering.domain.usage import ServiceUsage, UsageReport

MAX_PRICE = Decimal("1000")


def prices() -> st.SearchStrategy[Decimal]:
    """Unit prices: non-negative decimals with at most 6 places."""
    return st.decimals(min_value=Decimal("0"), max_value=MAX_PRICE, places=6, allow_nan=False, allow_infinity=False)


@st.composite
def graduated_rates(draw: st.DrawFn, max_bound: int = 10_000) -> Rate:
    """Rates with two to five tiers: strictly increasing bounds, the last unbounded."""
    bounds = sorted(draw(st.sets(st.integers(1, max_bound), min_size=1, max_size=4)))
    tier_prices = draw(st.lists(prices(), min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    upper: list[int | None] = [*bounds, None]
    return Rate(tuple(Tier(bound, price) for bound, price in zip(upper, tier_prices, strict=True)))


def flat_rates() -> st.SearchStrategy[Rate]:
    """Rates with one price for every unit."""
    return prices().map(Rate.flat)


def rates() -> st.SearchStrategy[Rate]:
    """Flat or graduated rates."""
    return st.one_of(flat_rates(), graduated_rates())


def rate_cards(rate: st.SearchStrategy[Rate] | None = None) -> st.SearchStrategy[RateCard]:
    """Rate cards in a few currencies, each kind priced by ``rate`` (any rate by default)."""
    kind_rate = rates() if rate is None else rate
    return st.builds(
        RateCard,
        name=st.just("card"),
        currency=st.sampled_from(["USD", "EUR", "GBP"]),
        connection_minutes=kind_rate,
        messages=kind_rate,
        bandwidth=kind_rate,
    )


def months() -> st.SearchStrategy[Month]:
    """UTC billing months."""
    return st.builds(Month, st.integers(2000, 2100), st.integers(1, 12))


def counts(max_value: int = 10**12) -> st.SearchStrategy[int]:
    """Non-negative usage counts, zero drawn often."""
    return st.one_of(st.just(0), st.integers(0, max_value))


def service_usages(service_id: str) -> st.SearchStrategy[ServiceUsage]:
    """One service's monthly usage."""
    return st.builds(
        ServiceUsage,
        service_id=st.just(service_id),
        connection_minutes=counts(),
        messages_published=counts(),
        messages_delivered=counts(),
        bytes_out=counts(10**15),
    )


@st.composite
def usage_reports(draw: st.DrawFn, max_services: int = 5) -> UsageReport:
    """An account's monthly usage report with distinct service ids, sorted by id."""
    ids = sorted(draw(st.sets(st.from_regex(r"svc-[a-z0-9]{1,6}", fullmatch=True), max_size=max_services)))
    services = tuple(draw(service_usages(sid)) for sid in ids)
    return UsageReport("acct-1", draw(months()), services)


@st.composite
def splits(draw: st.DrawFn, total: int, parts: int) -> list[int]:
    """Non-negative integers, ``parts`` of them, summing to ``total``."""
    cuts = sorted(draw(st.lists(st.integers(0, total), min_size=parts - 1, max_size=parts - 1)))
    bounds = [0, *cuts, total]
    return [upper - lower for lower, upper in zip(bounds, bounds[1:], strict=False)]


@st.composite
def split_usage_reports(draw: st.DrawFn, max_parts: int = 5) -> tuple[UsageReport, UsageReport]:
    """One service's month of usage, and the same usage split across several services."""
    whole = draw(usage_reports(max_services=1).filter(lambda report: len(report.services) == 1))
    (service,) = whole.services
    parts = draw(st.integers(1, max_parts))
    columns = [
        draw(splits(getattr(service, name), parts))
        for name in ("connection_minutes", "messages_published", "messages_delivered", "bytes_out")
    ]
    services = tuple(ServiceUsage(f"svc-{index}", *values) for index, values in enumerate(zip(*columns, strict=True)))
    return whole, UsageReport(whole.account_id, whole.month, services)
