"""ZVT, the ECR interface of German-standard card terminals (ZVT-Protocol revision 13.x):
the codec (`apdu`, `messages`), the appliance's client (`client.ZvtTerminal`) and a terminal
emulator for tests and simulation (`emulator.ZvtEmulator`)."""
