# Entry point on the device: runs the insole firmware.
# boot.py sets SAFE_BOOT when the BOOT button was held during start-up; then the
# firmware stays off and the USB serial is left to the REPL (and mpremote).
if not globals().get("SAFE_BOOT"):
    from insolefw import app

    app.main()
