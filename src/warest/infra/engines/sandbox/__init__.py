"""The sandbox engine: a deterministic, simulated WhatsApp network in process."""
