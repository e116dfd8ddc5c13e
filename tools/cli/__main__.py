from haochaping.tools.cli import main

main()
