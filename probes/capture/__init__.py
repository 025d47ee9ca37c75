"""The capture probe: TLS handshakes, alerts and SIP in pcap/pcapng files (via tshark)."""
