from mlops_control.cli import main

main()
