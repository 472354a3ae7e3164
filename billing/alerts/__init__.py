"""Usage alerts: an account's thresholds, the checker that finds crossings, and what a crossing writes."""
