"""Ingestion: every way an article comes in ends in IngestService.ingest."""
