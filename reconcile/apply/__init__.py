"""The apply engine: batches, scheduling, journaling and the final report. It knows no wire format."""
