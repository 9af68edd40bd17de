"""The API gateway: the only public entry point (auth, routing, webhooks front door)."""
