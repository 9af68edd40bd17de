"""Money in the orders service: exact decimals and ISO 4217 currency codes.

Amounts are ``Decimal`` end to end (``NUMERIC(18, 4)`` in PostgreSQL) and travel in JSON as
decimal *strings* (``"19.99"``). JSON numbers that are not integers are refused: by the time
the request body is parsed they are binary floats, and a float has already lost digits
(``12345678901234.1234`` arrives as ``12345678901234.123``).
"""

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

# Active ISO 4217 currency codes (list one, 2025), without funds codes, precious metals and
# the testing/"no currency" codes, which are no price currency. Update when ISO withdraws or
# adds a code.
_ACTIVE_CODES = """
    AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP
    GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES
    KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU
    MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON
    RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND
    TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR
    ZMW ZWG
"""
ISO_4217: frozenset[str] = frozenset(_ACTIVE_CODES.split())

MAX_DIGITS = 18
DECIMAL_PLACES = 4


def _no_floats(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError('send amounts as decimal strings, e.g. "19.99", not JSON numbers')
    return value


def _known_currency(code: str) -> str:
    if code not in ISO_4217:
        raise ValueError(f"{code} is not an active ISO 4217 currency code")
    return code


#: A non-negative amount with at most 4 decimal places, e.g. ``"19.99"``.
Amount = Annotated[
    Decimal,
    BeforeValidator(_no_floats),
    Field(ge=0, max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\d{1,14}(\.\d{1,4})?$",
            "description": "Decimal string; at most 14 digits before and 4 after the point.",
            "examples": ["19.99"],
        }
    ),
]

#: An ISO 4217 currency code in upper case, e.g. ``"EUR"``.
CurrencyCode = Annotated[
    str,
    Field(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$", examples=["EUR"]),
    AfterValidator(_known_currency),
]


# ISO 4217 minor units where they are not 2 (list one, 2025).
_MINOR_UNITS = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYU",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
}


def minor_units(currency: str) -> int:
    """Decimal places of ``currency``'s smallest unit: 2 for EUR, 0 for JPY, 3 for KWD."""
    return _MINOR_UNITS.get(currency, 2)


def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def fits_currency(amount: Decimal, currency: str) -> bool:
    """Whether ``amount`` has no more decimal places than ``currency`` has minor units."""
    return amount == amount.quantize(quantum(currency))


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round to ``currency``'s minor unit, half to even (banker's rounding, as accounting
    systems do to avoid a systematic upward bias)."""
    return amount.quantize(quantum(currency), rounding=ROUND_HALF_EVEN)
