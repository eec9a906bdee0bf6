from medfactory.cli import main

main()
