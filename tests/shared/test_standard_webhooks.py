"""The Standard Webhooks scheme, checked against the published test vector."""

import pytest

from shared.standard_webhooks import SignatureError, generate_secret, sign, verify

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signs_like_the_reference_implementations():
    assert sign(SECRET, MSG_ID, TIMESTAMP, BODY) == SIGNATURE


def test_accepts_the_reference_signature_among_others():
    header = f"v1,bm90LXRoaXMtb25l {SIGNATURE}"
    verify([generate_secret(), SECRET], MSG_ID, str(TIMESTAMP), header, BODY, now=TIMESTAMP)


@pytest.mark.parametrize(
    ("case", "kwargs"),
    [
        ("tampered body", {"body": BODY + b" "}),
        ("other id", {"msg_id": "msg_other"}),
        ("wrong secret", {"secrets_": [generate_secret()]}),
        ("stale", {"now": TIMESTAMP + 301}),
        ("from the future", {"now": TIMESTAMP - 301}),
        ("no v1 signature", {"signature_header": "v2,abc"}),
        ("timestamp not a number", {"timestamp": "yesterday"}),
    ],
)
def test_refuses(case, kwargs):
    arguments = {
        "secrets_": [SECRET],
        "msg_id": MSG_ID,
        "timestamp": str(TIMESTAMP),
        "signature_header": SIGNATURE,
        "body": BODY,
        "now": TIMESTAMP,
    } | kwargs
    with pytest.raises(SignatureError):
        verify(
            arguments.pop("secrets_"),
            arguments.pop("msg_id"),
            arguments.pop("timestamp"),
            arguments.pop("signature_header"),
            arguments.pop("body"),
            now=arguments.pop("now"),
        )
