"""``rapport seed --demo``: a realistic demo dataset, written through the public API.

It goes through the gateway like any client (so it needs a running stack, ``make run``),
which also exercises authentication, routing and every service's validation. The data is
deterministic and the writes are idempotent, so seeding twice leaves one dataset:
customers are keyed by e-mail (``on_conflict=update``), products by SKU, orders by
``source``/``external_id``, tickets by ``Idempotency-Key``, interactions by ``event_id``.

What a newcomer finds in ``/docs`` afterwards: 40 customers, half with Chinese names
(``zh-CN``, CNY, +86 phones), half with Latin-script names from Europe and the Americas;
a small catalogue priced in CNY and EUR; about a year of orders; calls, e-mails, chats and
page views; support tickets of every priority.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import phonenumbers
from phonenumbers import PhoneNumberType

__all__ = ["SeedError", "SeedReport", "seed_demo"]

#: (family name, given name, pinyin for the e-mail)
CHINESE = [
    ("张", "伟", "zhang.wei"),
    ("王", "芳", "wang.fang"),
    ("李", "娜", "li.na"),
    ("刘", "洋", "liu.yang"),
    ("陈", "静", "chen.jing"),
    ("杨", "磊", "yang.lei"),
    ("赵", "敏", "zhao.min"),
    ("黄", "丽", "huang.li"),
    ("周", "杰", "zhou.jie"),
    ("吴", "婷", "wu.ting"),
    ("徐", "强", "xu.qiang"),
    ("孙", "秀英", "sun.xiuying"),
    ("马", "超", "ma.chao"),
    ("朱", "丹", "zhu.dan"),
    ("胡", "军", "hu.jun"),
    ("郭", "晓明", "guo.xiaoming"),
    ("何", "雪", "he.xue"),
    ("高", "峰", "gao.feng"),
    ("林", "雅婷", "lin.yating"),
    ("罗", "浩", "luo.hao"),
]
#: (given name, family name, locale, time zone)
LATIN = [
    ("Ada", "Lovelace", "en-GB", "Europe/London"),
    ("José", "García", "es-ES", "Europe/Madrid"),
    ("Zoë", "Müller", "de-DE", "Europe/Berlin"),
    ("Émile", "Dubois", "fr-FR", "Europe/Paris"),
    ("Sofia", "Rossi", "it-IT", "Europe/Rome"),
    ("Lars", "Andersen", "da-DK", "Europe/Copenhagen"),
    ("Ana", "Souza", "pt-BR", "America/Sao_Paulo"),
    ("Liam", "O'Connor", "en-IE", "Europe/Dublin"),
    ("Maja", "Kowalska", "pl-PL", "Europe/Warsaw"),
    ("Noah", "Smith", "en-US", "America/New_York"),
    ("Chloé", "Martin", "fr-FR", "Europe/Paris"),
    ("Mateo", "Fernández", "es-AR", "America/Argentina/Buenos_Aires"),
    ("Ingrid", "Johansson", "sv-SE", "Europe/Stockholm"),
    ("Tomás", "Novák", "cs-CZ", "Europe/Prague"),
    ("Eva", "de Vries", "nl-NL", "Europe/Amsterdam"),
    ("Olivia", "Brown", "en-CA", "America/Toronto"),
    ("Jonas", "Schmidt", "de-AT", "Europe/Vienna"),
    ("Lucía", "Hernández", "es-MX", "America/Mexico_City"),
    ("Mikael", "Virtanen", "fi-FI", "Europe/Helsinki"),
    ("Grace", "Okafor", "en-NG", "Africa/Lagos"),
]
#: (SKU stem, name, category, CNY price, EUR price)
PRODUCTS = [
    ("TEA-LONGJING", "西湖龙井 Longjing green tea, 250 g", "tea", "168.00", "24.90"),
    ("TEA-PUER", "云南普洱 Pu'er cake, 357 g", "tea", "298.00", "39.00"),
    ("TEAPOT-YIXING", "宜兴紫砂壶 Yixing clay teapot", "teaware", "580.00", "79.00"),
    ("CUPS-CELADON", "Celadon cups, set of 4", "teaware", "128.00", "19.50"),
    ("MUG-BLUE-350", "Blue mug, 350 ml", "kitchen", "68.00", "12.90"),
    ("KETTLE-GOOSENECK", "Gooseneck kettle, 1 l", "kitchen", "399.00", "54.00"),
    ("GIFT-BOX", "Gift box with tasting notes", "gifts", "88.00", "9.90"),
    ("SUB-MONTHLY", "Monthly tea subscription", "subscriptions", "199.00", "29.00"),
]
TAGS = ["vip", "newsletter", "wholesale", "tea-lover", "gift-buyer", "b2b", "returning"]
STAGES = ["lead", "prospect", "customer", "customer", "customer", "loyal"]
TICKETS = [
    (
        "Parcel arrived damaged",
        "complaint",
        "high",
        "The box was crushed; the teapot lid is chipped.",
    ),
    ("Where is my order?", "question", "normal", "Tracking has not moved for four days."),
    ("发票抬头需要修改", "request", "normal", "请把发票抬头改为公司名称。"),
    ("Cannot log in to my account", "incident", "urgent", "Password reset e-mails never arrive."),
    (
        "Change my subscription date",
        "request",
        "low",
        "Please ship on the 15th instead of the 1st.",
    ),
    ("茶叶味道不对", "complaint", "high", "这批龙井有陈味, 和上次不一样。"),
]


class SeedError(RuntimeError):
    """The stack refused a demo write (the message quotes its problem details)."""


@dataclass
class SeedReport:
    created: Counter[str] = field(default_factory=Counter)
    existing: Counter[str] = field(default_factory=Counter)

    def count(self, kind: str, response: httpx.Response) -> None:
        fresh = response.status_code == 201 and "idempotent-replayed" not in response.headers
        (self.created if fresh else self.existing)[kind] += 1


class _Api:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def call(self, method: str, path: str, ok: tuple[int, ...], **kwargs: Any) -> httpx.Response:
        response = self.client.request(method, f"/api/v1{path}", **kwargs)
        if response.status_code not in ok:
            raise SeedError(
                f"{method} {path} answered {response.status_code}: {response.text[:500]}"
            )
        return response


def seed_demo(client: httpx.Client, *, now: datetime | None = None) -> SeedReport:
    """Write the demo dataset through ``client`` (based at the gateway, authenticated as an
    admin). Returns what was created and what was there already."""
    api = _Api(client)
    rng = random.Random(20261123)  # noqa: S311 - the same dataset every time
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    report = SeedReport()
    customers = _customers(api, rng, report)
    products = _products(api, report)
    _orders(api, rng, report, customers, products, now)
    _interactions(api, rng, report, customers, now)
    _tickets(api, rng, report, customers)
    return report


def _customers(api: _Api, rng: random.Random, report: SeedReport) -> list[tuple[str, str]]:
    """Creates (or finds) the customers; returns (id, currency) pairs."""
    bodies: list[tuple[dict[str, Any], str]] = []
    for i, (family, given, pinyin) in enumerate(CHINESE):
        bodies.append(
            (
                {
                    "family_name": family,
                    "given_name": given,
                    "emails": [f"{pinyin}@demo.rapport.example"],
                    "phones": _mobile("CN", i),
                    "locale": "zh-CN",
                    "timezone": "Asia/Shanghai",
                    "addresses": [
                        {
                            "line1": f"{rng.choice(['南京东路', '长安街', '文三路', '深南大道'])} {rng.randint(1, 999)} 号",
                            "city": rng.choice(["上海", "北京", "杭州", "深圳"]),
                            "country": "CN",
                        }
                    ],
                },
                "CNY",
            )
        )
    for i, (given, family, locale, tz) in enumerate(LATIN):
        local = f"{given}.{family}".lower().replace(" ", "").replace("'", "")
        ascii_local = local.encode("ascii", "ignore").decode() or f"customer{i}"
        bodies.append(
            (
                {
                    "given_name": given,
                    "family_name": family,
                    "emails": [f"{ascii_local}@demo.rapport.example"],
                    "phones": _mobile(locale[-2:], i),
                    "locale": locale,
                    "timezone": tz,
                    "addresses": [
                        {"line1": f"{rng.randint(1, 250)} Demo Street", "country": locale[-2:]}
                    ],
                },
                "EUR",
            )
        )
    result = []
    for body, currency in bodies:
        body |= {
            "tags": [*sorted(rng.sample(TAGS, rng.randint(1, 3))), "demo"],
            "lifecycle_stage": rng.choice(STAGES),
            "acquisition_channel": rng.choice(["social", "search", "referral", "store"]),
            "consent": {"email": {"granted": rng.random() < 0.8, "source": "demo-seed"}},
        }
        response = api.call(
            "POST", "/customers", (200, 201), params={"on_conflict": "update"}, json=body
        )
        report.count("customers", response)
        result.append((response.json()["id"], currency))
    return result


def _mobile(region: str, n: int) -> list[str]:
    """A valid mobile number of ``region`` (its example number, varied), in E.164."""
    example = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
    if example is None:
        return []
    digits = str(example.national_number)
    example.national_number = int(f"{digits[:-2]}{n % 100:02d}")
    if not phonenumbers.is_valid_number(example):
        return []
    return [phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)]


def _products(api: _Api, report: SeedReport) -> dict[str, list[tuple[str, str]]]:
    """Creates (or finds) the catalogue; returns currency → [(product id, price)]."""
    by_sku: dict[str, tuple[str, str, str]] = {}
    for stem, name, category, cny, eur in PRODUCTS:
        by_sku[f"DEMO-{stem}-CNY"] = (name, category, cny)
        by_sku[f"DEMO-{stem}-EUR"] = (name, category, eur)
    ids: dict[str, str] = {}
    for sku, (name, category, price) in by_sku.items():
        body = {
            "sku": sku,
            "name": name,
            "category": category,
            "price": price,
            "currency": sku[-3:],
        }
        response = api.call("POST", "/products", (201, 409), json=body)
        report.count("products", response)
        if response.status_code == 201:
            ids[sku] = response.json()["id"]
    if len(ids) < len(by_sku):  # some existed: look them up
        cursor: str | None = None
        while True:
            params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            page = api.call("GET", "/products", (200,), params=params).json()
            ids |= {p["sku"]: p["id"] for p in page["items"] if p["sku"] in by_sku}
            cursor = page.get("next_cursor")
            if not cursor:
                break
    result: dict[str, list[tuple[str, str]]] = {"CNY": [], "EUR": []}
    for sku, (_, _, price) in by_sku.items():
        result[sku[-3:]].append((ids[sku], price))
    return result


def _orders(
    api: _Api,
    rng: random.Random,
    report: SeedReport,
    customers: list[tuple[str, str]],
    products: dict[str, list[tuple[str, str]]],
    now: datetime,
) -> None:
    n = 0
    for customer_id, currency in customers:
        for _ in range(rng.choice([0, 1, 1, 2, 3, 5])):
            n += 1
            picks = rng.sample(products[currency], rng.randint(1, 3))
            body = {
                "customer_id": customer_id,
                "currency": currency,
                "channel": rng.choice(
                    ["online_store", "online_store", "marketplace", "physical_store"]
                ),
                "lines": [
                    {
                        "product_id": pid,
                        "quantity": rng.randint(1, 4),
                        "tax_rate": "0.13" if currency == "CNY" else "0.19",
                    }
                    for pid, _ in picks
                ],
                "source": "demo",
                "external_id": f"DEMO-{n:04d}",
                "placed_at": (
                    now - timedelta(days=rng.randint(1, 365), minutes=rng.randint(0, 1440))
                ).isoformat(),
            }
            # (source, external_id) identifies an order: a second run answers 409.
            response = api.call("POST", "/orders", (201, 409), json=body)
            report.count("orders", response)


def _interactions(
    api: _Api,
    rng: random.Random,
    report: SeedReport,
    customers: list[tuple[str, str]],
    now: datetime,
) -> None:
    n = 0
    for customer_id, currency in customers:
        chinese = currency == "CNY"
        for _ in range(rng.randint(1, 5)):
            n += 1
            when = (
                now - timedelta(days=rng.randint(0, 90), minutes=rng.randint(0, 1440))
            ).isoformat()
            kind = rng.choice(["call", "email", "chat", "page_view", "visit"])
            body: dict[str, Any] = {
                "customer_id": customer_id,
                "occurred_at": when,
                "event_id": f"demo-int-{n}",
            }
            if kind == "call":
                body |= {
                    "channel": "call",
                    "kind": "call",
                    "direction": rng.choice(["inbound", "outbound"]),
                    "subject": "询问发货时间" if chinese else "Delivery date",
                    "metadata": {"duration_s": rng.randint(30, 900), "outcome": "answered"},
                }
            elif kind in ("email", "chat"):
                body |= {
                    "channel": kind,
                    "kind": "message",
                    "direction": "inbound",
                    "subject": "关于订阅" if chinese else "About my subscription",
                    "summary": "客户想更改配送地址。"
                    if chinese
                    else "Wants to change the delivery address.",
                }
            elif kind == "visit":
                body |= {
                    "channel": "meeting",
                    "kind": "visit",
                    "summary": "Store visit, tasted the Pu'er.",
                }
            else:
                body |= {
                    "channel": "web",
                    "kind": "page_view",
                    "metadata": {
                        "url": f"https://shop.example.com/p/{rng.choice(PRODUCTS)[0].lower()}"
                    },
                }
            response = api.call("POST", "/interactions", (200, 201), json=body)
            report.count("interactions", response)


def _tickets(
    api: _Api, rng: random.Random, report: SeedReport, customers: list[tuple[str, str]]
) -> None:
    for n, (title, category, priority, description) in enumerate(TICKETS * 2):
        customer_id, _ = customers[rng.randrange(len(customers))]
        body = {
            "customer_id": customer_id,
            "title": title,
            "category": category,
            "priority": priority,
            "channel": rng.choice(["email", "chat", "call"]),
            "description": description,
        }
        response = api.call(
            "POST",
            "/tickets",
            (200, 201),
            json=body,
            headers={"Idempotency-Key": f"demo-ticket-{n}"},
        )
        report.count("tickets", response)
