from madengine.cli import main

main()
