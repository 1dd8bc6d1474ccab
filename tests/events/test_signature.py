"""X-Hub-Signature-256 as GitHub computes it, and every way a header can fail to match."""

from __future__ import annotations

import pytest

from app.events.signature import sign, verify

# GitHub's own example: https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
SECRET = "It's a Secret to Everybody"
BODY = b"Hello, World!"
SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_the_signature_is_the_one_github_documents():
    assert sign(BODY, SECRET) == SIGNATURE
    assert sign(BODY, SECRET.encode()) == SIGNATURE


@pytest.mark.parametrize("header", [SIGNATURE, SIGNATURE.encode()], ids=["str", "bytes"])
@pytest.mark.parametrize("secret", [SECRET, SECRET.encode()], ids=["str secret", "bytes secret"])
def test_the_right_signature_verifies_as_str_or_as_the_bytes_an_asgi_server_gives(header, secret):
    assert verify(BODY, secret, header)


@pytest.mark.parametrize("header", [
    None,
    "",
    b"",
    "sha256=",
    "sha1=" + SIGNATURE.removeprefix("sha256=")[:40],
    SIGNATURE.upper(),
    SIGNATURE[:-1] + "0",
    SIGNATURE + "0",
    " " + SIGNATURE,
    SIGNATURE[:-1] + "é",  # not ASCII: refused, not a TypeError from hmac.compare_digest
    SIGNATURE.encode()[:-1] + b"\xff",
], ids=repr)
def test_anything_but_the_exact_signature_is_refused(header):
    assert verify(BODY, SECRET, header) is False


def test_a_body_changed_after_signing_or_another_secret_is_refused():
    assert not verify(BODY + b" ", SECRET, SIGNATURE)
    assert not verify(BODY, SECRET + " ", SIGNATURE)
