"""orders: products, orders, payments and the sales pipeline."""
