"""The neonize engine: WhatsApp through whatsmeow (neonize's Go binding). See docs/neonize.md."""

from warest.infra.engines.neonize.connection import NeonizeConnection
from warest.infra.engines.neonize.engine import NeonizeEngine

__all__ = ["NeonizeConnection", "NeonizeEngine"]
