from cardshield.cli import main

raise SystemExit(main())
