from recsys.cli import main
import sys
sys.exit(main())
