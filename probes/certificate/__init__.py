"""The certificate probe: load the RMX certificate in any form and judge it."""
