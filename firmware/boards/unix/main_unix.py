# Entry point of the simulated board: `micropython -X heapsize=128K main_unix.py`.
from insolefw import app

app.main()
