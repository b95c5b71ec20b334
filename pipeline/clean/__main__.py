from pipeline.clean.run import main

main()
