"""The lot's behaviour on the ledger: entry and exit decisions, lanes, reservations, payments,
housekeeping, availability, alarms and the recorders. Below the API and the CLI; above the
ledger and the pure core. Nothing here imports the wiring (`appliance.service`)."""
