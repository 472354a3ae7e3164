from fanmeter.cli import main

main()
