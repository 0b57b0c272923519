"""Where candidates and evidence come from besides a checkpoint on disk: torrents (and, later, hubs)."""
