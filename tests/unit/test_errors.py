"""The error-category classifier: every category, from HTTP statuses, messages and exception types."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from core.domain.classifier import CATEGORY_TRAITS, ProviderError, QuotaExceeded, Severity, classify
from core.domain.models import ErrorCategory as C


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (429, C.PROVIDER_RATE_LIMITED),
        (401, C.PROVIDER_AUTH),
        (403, C.PROVIDER_AUTH),
        (408, C.PROVIDER_TIMEOUT),
        (504, C.PROVIDER_TIMEOUT),
        (500, C.PROVIDER_UNAVAILABLE),
        (502, C.PROVIDER_UNAVAILABLE),
        (503, C.PROVIDER_UNAVAILABLE),
        (400, C.INVALID_REQUEST),
        (404, C.INVALID_REQUEST),
        (422, C.INVALID_REQUEST),
    ],
)
def test_http_status_alone_decides_the_category(status: int, expected: C) -> None:
    assert classify(ProviderError("openai", status, None, "")).category is expected


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        (400, None, "This model's maximum context length is 8192 tokens.", C.CONTEXT_LENGTH_EXCEEDED),
        (400, "context_length_exceeded", "", C.CONTEXT_LENGTH_EXCEEDED),
        (400, None, "prompt is too long: 210000 tokens > 200000 maximum", C.CONTEXT_LENGTH_EXCEEDED),
        (400, "content_filter", "The response was filtered", C.CONTENT_FILTERED),
        (400, None, "Output blocked by the content policy", C.CONTENT_FILTERED),
        (None, None, "Candidate was blocked due to SAFETY", C.CONTENT_FILTERED),
        (None, None, "Rate limit reached for gpt-4o in organization org-1", C.PROVIDER_RATE_LIMITED),
        (None, None, "Too Many Requests", C.PROVIDER_RATE_LIMITED),
        (None, None, "Incorrect API key provided: sk-****", C.PROVIDER_AUTH),
        (None, "authentication_error", "invalid x-api-key", C.PROVIDER_AUTH),
        (None, None, "Unauthorized", C.PROVIDER_AUTH),
        (None, None, "something odd happened", C.INTERNAL),
        (None, None, "", C.INTERNAL),
    ],
)
def test_message_and_code_patterns(status: int | None, code: str | None, message: str, expected: C) -> None:
    assert classify(ProviderError("anthropic", status, code, message)).category is expected


def test_a_specific_message_wins_over_a_generic_status() -> None:
    # A 400 that says the context is too long is not a plain invalid request.
    assert classify(ProviderError("openai", 400, None, "context_length exceeded")).category is (
        C.CONTEXT_LENGTH_EXCEEDED
    )
    # A 500 whose message is a content-policy refusal is a content filter, not an outage.
    assert classify(ProviderError("google", 500, None, "blocked by moderation")).category is C.CONTENT_FILTERED


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (TimeoutError("read timed out"), C.PROVIDER_TIMEOUT),
        (ConnectionError("connection reset"), C.PROVIDER_UNAVAILABLE),
        (ConnectionRefusedError(111, "refused"), C.PROVIDER_UNAVAILABLE),
        (QuotaExceeded("free tier: 100 executions a day"), C.QUOTA_EXCEEDED),
        (ValueError("bug"), C.INTERNAL),
        (KeyError("missing"), C.INTERNAL),
    ],
)
def test_exception_types(error: BaseException, expected: C) -> None:
    assert classify(error).category is expected


def test_severity_and_retryable_follow_the_category() -> None:
    rate = classify(ProviderError("openai", 429))
    assert (rate.severity, rate.retryable) == (Severity.MEDIUM, True)
    auth = classify(ProviderError("openai", 401))
    assert (auth.severity, auth.retryable) == (Severity.CRITICAL, False)
    outage = classify(ProviderError("openai", 503))
    assert (outage.severity, outage.retryable) == (Severity.HIGH, True)
    quota = classify(QuotaExceeded())
    assert (quota.severity, quota.retryable) == (Severity.LOW, False)


def test_every_category_has_traits() -> None:
    assert set(CATEGORY_TRAITS) == set(C)
    for category, traits in CATEGORY_TRAITS.items():
        assert traits.category is category


def test_provider_error_says_what_happened() -> None:
    err = ProviderError("mistral", 503, "unavailable", "upstream down")
    assert str(err) == "mistral 503 unavailable: upstream down"
    assert str(ProviderError("mistral", None)) == "mistral - :"


def test_provider_error_travels_through_a_context_manager() -> None:
    # Admin actions run their body in a @contextmanager; the error must come out as itself.
    @contextmanager
    def wrapper() -> Iterator[None]:
        try:
            yield
        except Exception:
            raise

    with pytest.raises(ProviderError) as caught, wrapper():
        raise ProviderError("openai", 503, None, "down")
    assert caught.value.status == 503


def test_provider_error_pickles() -> None:
    err = ProviderError(provider="openai", status=429, code="rate_limit", message="slow down")
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.provider, copy.status, copy.code, copy.message) == ("openai", 429, "rate_limit", "slow down")
    assert classify(copy).category is C.PROVIDER_RATE_LIMITED
