from model.eval.cli import main

main()
