"""commsrisk: compliance risk scoring for workplace messages."""
