from uuid import UUID

from pydantic import BaseModel, Field

from services.orders.product.schemas import ProductRead


class RecommendedProduct(BaseModel):
    product: ProductRead
    score: float = Field(
        ge=0,
        description="Sum of the cosine similarities between this product and each product "
        "the customer bought (higher is better; not a probability).",
        examples=[1.224745],
    )
    because: list[UUID] = Field(
        description="The customer's bought products that point to this one."
    )


class Recommendations(BaseModel):
    customer_id: UUID
    items: list[RecommendedProduct]
