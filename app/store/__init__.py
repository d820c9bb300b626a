"""The event, message and run stores: every read and write the service makes to MongoDB."""
