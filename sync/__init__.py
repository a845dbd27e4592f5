"""Store-and-forward cloud sync: MQTT uplink of the event log, signed bundle downlink."""
