# Firmware and protocol versions, reported in STATUS packets and recording headers.
FW_MAJOR = 0
FW_MINOR = 1
FW_PATCH = 0
PROTOCOL_VERSION = 1
