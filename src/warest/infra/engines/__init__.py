"""WhatsApp engines: the sandbox network and neonize."""
