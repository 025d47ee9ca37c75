"""The daemon: HTTP endpoint, scheduler, snapshot, exporter, webhook, actions, report store."""
