"""Seams to the host system: journald logging, the systemd watchdog, secret files and
redaction of secrets in what is shown or exported, and the CPU quota the plate readers and
sensor pollers get their shares of.
No lot logic."""
