"""The open-model arrival engine: shapes, the dispatcher, latency recording in two views, reports."""
