"""What every deployment of the services shares, whatever runs them: the key ring, each service's settings
on a target (derived from the catalog), and the alert rules. The one-machine runner, the Pulumi platform
and the tests import it; it imports neither of them.
"""
