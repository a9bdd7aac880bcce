from facetrack.cli import main

main()
