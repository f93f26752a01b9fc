"""NLP: language detection, spaCy pipelines, Presidio PII and entities from one parse."""
