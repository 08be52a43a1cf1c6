from elcrec.cli import main

main()
