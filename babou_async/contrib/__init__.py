"""Optional integrations; nothing in the core imports them."""
