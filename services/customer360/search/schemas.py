from pydantic import BaseModel, Field

from services.customer360.customer.schemas import CustomerRead


class SearchHit(BaseModel):
    """One match: the profile (masked like everywhere else) and how well it matched."""

    score: float = Field(description="Higher is better; 1.0 or more is an exact fragment match.")
    customer: CustomerRead


class SearchResults(BaseModel):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "items": [
                        {
                            "score": 1.5,
                            "customer": {
                                "id": "0b9f5a52-4c1e-4d53-9b0e-0f4f1d1a2b3c",
                                "kind": "person",
                                "display_name": "张伟 (Wei Zhang)",
                                "emails": ["w***@example.com"],
                                "phones": ["+86*******5678"],
                                "tags": ["vip"],
                                "owner_id": "rep-1",
                                "team_id": "team-a",
                                "created_at": "2026-11-23T10:00:00Z",
                                "updated_at": "2026-11-23T10:00:00Z",
                            },
                        }
                    ]
                }
            ]
        }
    }

    items: list[SearchHit]
