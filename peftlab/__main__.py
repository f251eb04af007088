from peftlab.run import main

raise SystemExit(main())
