"""policyqa evaluation: labelled questions, metrics and reports."""
