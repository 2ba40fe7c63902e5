from flowyard.cli.main import main

main()
