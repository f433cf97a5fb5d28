"""Store-and-forward to the office over MQTT, and the office's receiver and export."""
