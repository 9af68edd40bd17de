"""interactions: every touchpoint with a customer (calls, e-mails, chats, visits, notes…)."""
