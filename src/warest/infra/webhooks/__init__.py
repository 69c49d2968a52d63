"""Webhook delivery infrastructure: the egress (SSRF) guard and the HTTP sender."""
