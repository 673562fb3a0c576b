"""API keys compare in constant time; anti-forgery pairs are stateless and bound to the key."""

from __future__ import annotations

from backbone.platform.admin_auth import ApiKeys, XsrfTokens, xsrf_key


def test_api_keys() -> None:
    keys = ApiKeys("secret")
    assert keys.accepts("secret")
    assert not keys.accepts("Secret")
    assert not keys.accepts("")
    assert not keys.accepts(None)
    assert ApiKeys("").accepts(None), "an empty key (development mode) accepts anything"


def test_a_pair_matches_only_itself_and_only_under_its_key() -> None:
    tokens = XsrfTokens(xsrf_key(b"signing", b"api"))
    cookie, token = tokens.issue()
    other_cookie, other_token = tokens.issue()
    assert tokens.matches(cookie, token)
    assert tokens.matches(other_cookie, other_token)
    assert not tokens.matches(cookie, other_token)
    assert not tokens.matches(cookie, None)
    assert not tokens.matches(None, token)
    assert not tokens.matches("not base64!", token)
    assert not tokens.matches(cookie[:-2], token)
    assert not XsrfTokens(xsrf_key(b"signing", b"other api key")).matches(cookie, token)
    assert XsrfTokens(xsrf_key(b"signing", b"api")).matches(cookie, token), "another process agrees"
