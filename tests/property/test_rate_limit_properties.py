"""Properties of the per-key token buckets (kernel/rate_limit.py): however requests arrive, no key is
admitted more than ``burst + rate x elapsed`` in any span, a refused request is admitted once it waits
what it was told, keys never share a bucket, and every decision is the one an exact token bucket makes."""

from __future__ import annotations

from fractions import Fraction
from itertools import accumulate

from hypothesis import given, settings
from hypothesis import strategies as st

from kernel.rate_limit import NS_PER_S, Rate, RateLimiter, retry_after_seconds

rates = st.builds(Rate, per_second=st.sampled_from([0.5, 1.0, 3.0, 10.0, 250.0, 1000.0]), burst=st.integers(1, 20))
# Gaps between requests, in ns: bursts (0), sub-interval gaps and long idle stretches.
gaps = st.lists(st.one_of(st.just(0), st.integers(1, NS_PER_S // 10), st.integers(1, 5 * NS_PER_S)), max_size=120)
keys = st.lists(st.sampled_from(["tok_a", "tok_b", "tok_c"]), min_size=120, max_size=120)


def _admitted_times(rate: Rate, times: list[int]) -> list[int]:
    limiter = RateLimiter(rate)
    return [t for t in times if limiter.admit("tok", t) == 0]


@settings(max_examples=300, deadline=None)
@given(rate=rates, gaps=gaps)
def test_no_span_admits_more_than_the_burst_plus_the_rate_times_its_length(rate: Rate, gaps: list[int]) -> None:
    admitted = _admitted_times(rate, list(accumulate(gaps)))
    interval = rate.interval_ns
    for i, first in enumerate(admitted):
        for j in range(i, len(admitted)):
            span = admitted[j] - first
            assert j - i + 1 <= rate.burst + Fraction(span, interval)


@settings(max_examples=300, deadline=None)
@given(rate=rates, gaps=gaps)
def test_every_decision_is_an_exact_token_buckets(rate: Rate, gaps: list[int]) -> None:
    """The reference: a level of tokens (exact fractions), refilled at the rate up to the burst, one per request."""
    limiter, level, last = RateLimiter(rate), Fraction(rate.burst), 0
    for now in accumulate(gaps):
        level = min(Fraction(rate.burst), level + Fraction(now - last, rate.interval_ns))
        last = now
        expected = level >= 1
        if expected:
            level -= 1
        assert (limiter.admit("tok", now) == 0) is expected


@settings(max_examples=200, deadline=None)
@given(rate=rates, gaps=gaps)
def test_a_refused_request_is_admitted_after_the_wait_it_was_given_and_not_a_nanosecond_before(
    rate: Rate, gaps: list[int]
) -> None:
    limiter = RateLimiter(rate)
    for now in accumulate(gaps):
        wait = limiter.admit("tok", now)
        if wait:
            probe = RateLimiter(rate)
            probe._tat = dict(limiter._tat)  # the same bucket, asked at two instants
            assert probe.admit("tok", now + wait - 1) > 0
            assert limiter.admit("tok", now + wait) == 0
            assert retry_after_seconds(wait) * NS_PER_S >= wait


@settings(max_examples=200, deadline=None)
@given(rate=rates, gaps=gaps, keys=keys)
def test_each_key_is_limited_as_if_it_were_alone(rate: Rate, gaps: list[int], keys: list[str]) -> None:
    shared = RateLimiter(rate)
    times = list(accumulate(gaps))
    decisions = [(key, now, shared.admit(key, now) == 0) for key, now in zip(keys, times, strict=False)]
    for key in set(keys):
        alone, mine = RateLimiter(rate), [(now, ok) for k, now, ok in decisions if k == key]
        assert [ok for _, ok in mine] == [alone.admit(key, now) == 0 for now, _ in mine]


@settings(max_examples=100, deadline=None)
@given(rate=rates, gaps=gaps)
def test_forgetting_full_buckets_changes_no_decision(rate: Rate, gaps: list[int]) -> None:
    kept, swept = RateLimiter(rate), RateLimiter(rate)
    for now in accumulate(gaps):
        swept.sweep(now)
        assert (kept.admit("tok", now) == 0) is (swept.admit("tok", now) == 0)


def test_a_burst_is_admitted_at_once_then_one_per_interval() -> None:
    limiter = RateLimiter(Rate(1, 2))
    assert [limiter.admit("tok", 0) for _ in range(3)] == [0, 0, NS_PER_S]
    assert limiter.admit("tok", NS_PER_S) == 0
    assert limiter.admit("other", 0) == 0  # another key has its own bucket


def test_a_rate_of_zero_admits_everything_and_keeps_nothing() -> None:
    limiter = RateLimiter(Rate(0, 1))
    assert all(limiter.admit("tok", 0) == 0 for _ in range(1000))
    assert len(limiter) == 0


def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one() -> None:
    assert [retry_after_seconds(w) for w in (1, NS_PER_S, NS_PER_S + 1, 2 * NS_PER_S)] == [1, 1, 2, 2]
