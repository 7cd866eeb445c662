"""What persists on disk: durable writes, the state, the apply journal, the lock, saved plans."""
