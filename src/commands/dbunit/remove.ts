import {makeRemoveCommand} from '../../cli/rules-commands.js'

export default makeRemoveCommand('dbunit')
