"""What every protocol package shares: the handler registry and the blocking portal."""
