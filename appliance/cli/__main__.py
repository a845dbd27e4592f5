"""`python -m appliance.cli`: the `lotedge` command."""

from appliance.cli.main import main

main()
